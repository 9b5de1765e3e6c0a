import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/** A state change sent to a robot, with the status life cycle of docs/protocol.md §5.2. */
export class Command extends Model<InferAttributes<Command>, InferCreationAttributes<Command>> {
  declare id: string
  declare robotId: number
  declare command: string
  declare status: CreationOptional<string>
  declare issuedBy: string
  declare issuedById: number | null
  declare message: CreationOptional<string | null>
  /** A model command's parameters and the robot's result, as JSON text (docs/protocol.md §14.3). */
  declare params: CreationOptional<string | null>
  declare result: CreationOptional<string | null>
  /** A model command's own timeout (seconds), in place of COMMAND_TIMEOUT. */
  declare timeoutSeconds: CreationOptional<number | null>
  declare createdAt: CreationOptional<Date>
  declare deliveredAt: CreationOptional<Date | null>
  declare ackedAt: CreationOptional<Date | null>
  declare expiresAt: CreationOptional<Date | null>
  declare sentAt: CreationOptional<Date | null>
  declare updatedAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof Command {
    return Command.init({
      id: { type: DataTypes.UUID, primaryKey: true },
      robotId: { type: DataTypes.INTEGER, allowNull: false },
      command: { type: DataTypes.STRING(64), allowNull: false },
      status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'pending' },
      issuedBy: { type: DataTypes.STRING(150), allowNull: false },
      issuedById: { type: DataTypes.INTEGER, allowNull: true },
      message: { type: DataTypes.STRING(500), allowNull: true },
      params: { type: DataTypes.TEXT, allowNull: true },
      result: { type: DataTypes.TEXT, allowNull: true },
      timeoutSeconds: { type: DataTypes.INTEGER, allowNull: true },
      createdAt: DataTypes.DATE,
      deliveredAt: { type: DataTypes.DATE, allowNull: true },
      ackedAt: { type: DataTypes.DATE, allowNull: true },
      expiresAt: { type: DataTypes.DATE, allowNull: true },
      sentAt: { type: DataTypes.DATE, allowNull: true },
      updatedAt: DataTypes.DATE
    }, { sequelize, tableName: 'commands', underscored: true })
  }
}
