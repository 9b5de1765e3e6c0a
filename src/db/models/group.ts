import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'
import type { Role } from '../../contract/roles.js'

/** A named set of robots, granted to users as a whole. */
export class Group extends Model<InferAttributes<Group>, InferCreationAttributes<Group>> {
  declare id: CreationOptional<number>
  declare name: string
  declare createdAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof Group {
    return Group.init({
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      name: { type: DataTypes.STRING(100), allowNull: false, unique: true },
      createdAt: DataTypes.DATE
    }, { sequelize, tableName: 'groups', underscored: true, updatedAt: false })
  }
}

/** Robot `robotId` is in group `groupId` (a robot may be in several). */
export class GroupRobot extends Model<InferAttributes<GroupRobot>, InferCreationAttributes<GroupRobot>> {
  declare groupId: number
  declare robotId: number
  declare createdAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof GroupRobot {
    return GroupRobot.init({
      groupId: { type: DataTypes.INTEGER, primaryKey: true },
      robotId: { type: DataTypes.INTEGER, primaryKey: true },
      createdAt: DataTypes.DATE
    }, { sequelize, tableName: 'group_robots', underscored: true, updatedAt: false })
  }
}

/** User `userId` holds `role` on every robot of group `groupId`, until `expiresAt`. */
export class GroupGrant extends Model<InferAttributes<GroupGrant>, InferCreationAttributes<GroupGrant>> {
  declare groupId: number
  declare userId: number
  declare role: Role
  declare expiresAt: Date | null
  declare createdAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof GroupGrant {
    return GroupGrant.init({
      groupId: { type: DataTypes.INTEGER, primaryKey: true },
      userId: { type: DataTypes.INTEGER, primaryKey: true },
      role: { type: DataTypes.STRING(16), allowNull: false },
      expiresAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: DataTypes.DATE
    }, { sequelize, tableName: 'group_grants', underscored: true, updatedAt: false })
  }
}
