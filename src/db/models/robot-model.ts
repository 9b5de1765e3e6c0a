import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/**
 * One version of a robot model (docs/protocol.md §14): never changed once
 * created. `definition` is the model's JSON text (telemetry and commands, in
 * declaration order). A deleted version keeps its row, so its number is never
 * reused.
 */
export class RobotModel extends Model<InferAttributes<RobotModel>, InferCreationAttributes<RobotModel>> {
  declare id: CreationOptional<number>
  declare name: string
  declare version: number
  declare description: string | null
  declare definition: string
  declare createdAt: CreationOptional<Date>
  declare deletedAt: CreationOptional<Date | null>

  static initModel (sequelize: Sequelize): typeof RobotModel {
    return RobotModel.init({
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      name: { type: DataTypes.STRING(64), allowNull: false },
      version: { type: DataTypes.INTEGER, allowNull: false },
      description: { type: DataTypes.TEXT, allowNull: true },
      definition: { type: DataTypes.TEXT, allowNull: false },
      createdAt: DataTypes.DATE,
      deletedAt: { type: DataTypes.DATE, allowNull: true }
    }, { sequelize, tableName: 'robot_models', underscored: true, updatedAt: false })
  }
}
