import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/** The many-to-many grant: user `userId` may see and command robot `robotId`. */
export class RobotAccess extends Model<InferAttributes<RobotAccess>, InferCreationAttributes<RobotAccess>> {
  declare userId: number
  declare robotId: number
  declare createdAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof RobotAccess {
    return RobotAccess.init({
      userId: { type: DataTypes.INTEGER, primaryKey: true },
      robotId: { type: DataTypes.INTEGER, primaryKey: true },
      createdAt: DataTypes.DATE
    }, { sequelize, tableName: 'robot_access', underscored: true, updatedAt: false })
  }
}
